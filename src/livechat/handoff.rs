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
