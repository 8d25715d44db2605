//! What every rate limiter shares: one clock, and the wait a refusal names.
//!
//! governor's default clock reads the CPU's features (`CPUID`) each time one
//! is made, and on a virtual machine every such read traps to the hypervisor:
//! a clock made per socket cost a fifth of the server's CPU while sockets
//! connected, and one made per refusal made a flood of refused requests
//! dearer to refuse. One clock, made once, serves them all.

use std::{sync::LazyLock, time::Duration};

use governor::{
    NotUntil,
    clock::{Clock, DefaultClock},
};

static CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

/// The shared clock, for a limiter made after start-up (a copy is cheap).
pub fn clock() -> DefaultClock {
    CLOCK.clone()
}

/// How long a refused caller should wait before trying again.
pub fn retry_after(not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(CLOCK.now())
}
