//! Does a visitor want a human? The contract's English pattern (widgets' "Human"
//! button sends "I would like to talk to a human agent"), plus the same request
//! in Spanish, French, German and Portuguese.

use std::sync::LazyLock;

use regex::Regex;

static WANTS_HUMAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)",
        r"(talk|speak|chat|connect|wanna|want|need).*(human|agent|person|support|representative|someone)",
        r"|customer support|real person|live (chat|support|agent)",
        // es
        r"|(hablar|habla|comunicar|necesito|quiero).*(humano|agente|persona|asesor|soporte)",
        // fr
        r"|(parler|veux|besoin).*(humain|agent|conseiller|personne r[ée]elle)",
        // de
        r"|(sprechen|brauche|m[öo]chte|will).*(mensch|mitarbeiter|berater|support)",
        // pt
        r"|(falar|preciso|quero).*(humano|atendente|agente|pessoa)",
    ))
    .expect("a valid pattern")
});

/// The text of the `ai` message that confirms a hand-off; widgets look for
/// "Connecting you to our support team".
pub const HANDOFF_REPLY: &str =
    "Connecting you to our support team. A member of the team will reply here shortly.";

pub fn wants_human(message: &str) -> bool {
    WANTS_HUMAN.is_match(message)
}

#[cfg(test)]
mod tests {
    use super::wants_human;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_answered_without_panicking(text in "\\PC{0,400}|.{0,400}") {
            let _ = wants_human(&text);
        }

        #[test]
        fn the_human_button_is_found_anywhere(before in "[a-z ]{0,40}", after in "[a-z ]{0,40}") {
            let text = format!("{before} I would like to talk to a human agent {after}");
            prop_assert!(wants_human(&text));
        }
    }

    #[test]
    fn long_messages_are_answered_quickly() {
        let text = "talk ".repeat(20_000) + &"x".repeat(100_000);
        let started = std::time::Instant::now();
        let _ = wants_human(&text);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn recognises_requests_for_a_human() {
        for text in [
            "I would like to talk to a human agent",
            "Can I SPEAK with a real person?",
            "customer support please",
            "is there live chat",
            "I need someone",
            "quiero hablar con un humano",
            "je veux parler à un conseiller",
            "Ich möchte mit einem Mitarbeiter sprechen",
            "preciso falar com um atendente",
        ] {
            assert!(wants_human(text), "{text}");
        }
        for text in [
            "What are your opening hours?",
            "hello",
            "The agent field is empty",
        ] {
            assert!(!wants_human(text), "{text}");
        }
    }
}
