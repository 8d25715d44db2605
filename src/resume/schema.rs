//! The resume JSON of SPEC §6: the empty skeleton, normalising whatever a model
//! or client sends into that shape, deterministic missing-field detection, and
//! the fenced ```json blocks models put in their answers.

use serde_json::{Map, Value, json};

/// Top-level keys with a plain string value.
pub const TEXT_FIELDS: [&str; 6] = ["Name", "Title", "Location", "Email", "Phone", "Summary"];
const CONTACT_FIELDS: [&str; 5] = ["Address", "Email", "Phone", "LinkedIn", "GitHub"];
const EXPERIENCE_TEXT: [&str; 6] = [
    "Position",
    "Company",
    "Location",
    "Duration",
    "Dates",
    "Description",
];
const EDUCATION_TEXT: [&str; 4] = ["Degree", "Field", "Institution", "Dates"];
/// Fields a resume is not complete without, in the order they are asked for.
pub const REQUIRED_FIELDS: [&str; 8] = [
    "Name",
    "Title",
    "Location",
    "Email",
    "Phone",
    "Summary",
    "Experience",
    "Education",
];

/// Every key, with empty values.
pub fn skeleton() -> Value {
    json!({
        "Name": "", "Title": "", "Location": "", "Email": "", "Phone": "", "Summary": "",
        "Contact Information": { "Address": "", "Email": "", "Phone": "", "LinkedIn": "", "GitHub": "" },
        "Skills": {},
        "Experience": [],
        "Education": [],
        "Projects": [],
        "Awards": [],
    })
}

/// Whether `field` is a key clients may set with `update_field`.
pub fn is_known_field(field: &str) -> bool {
    skeleton().get(field).is_some()
        || field
            .strip_prefix("Contact Information.")
            .is_some_and(|sub| CONTACT_FIELDS.contains(&sub))
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| text(Some(v)))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// A list of strings from a list, a single string (split on new lines and
/// bullets) or nothing.
fn text_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| text(Some(v)))
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .lines()
            .map(|line| {
                line.trim()
                    .trim_start_matches(['-', '*', '•'])
                    .trim()
                    .to_owned()
            })
            .filter(|line| !line.is_empty())
            .collect(),
        Some(other @ (Value::Number(_) | Value::Bool(_))) => vec![text(Some(other))],
        _ => Vec::new(),
    }
}

fn object_of_texts(value: Option<&Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .map(|key| {
            (
                (*key).to_owned(),
                Value::String(text(value.and_then(|v| v.get(*key)))),
            )
        })
        .collect()
}

/// `Skills` as an object of string arrays: frontends crash on a plain array, so a
/// list becomes `{"General": [...]}` and a comma-separated string a list.
fn skills(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Object(groups)) => Value::Object(
            groups
                .iter()
                .map(|(group, items)| {
                    let items = match items {
                        Value::String(s) => s
                            .split([',', ';'])
                            .map(|x| x.trim().to_owned())
                            .filter(|x| !x.is_empty())
                            .collect(),
                        other => text_list(Some(other)),
                    };
                    (group.clone(), json!(items))
                })
                .collect(),
        ),
        Some(Value::Array(_)) => json!({ "General": text_list(value) }),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            json!({ "General": s.split([',', ';']).map(|x| x.trim()).filter(|x| !x.is_empty()).collect::<Vec<_>>() })
        }
        _ => json!({}),
    }
}

fn entries(value: Option<&Value>, build: impl Fn(&Value) -> Value) -> Value {
    match value {
        Some(Value::Array(items)) => Value::Array(
            items
                .iter()
                .filter(|item| item.is_object())
                .map(build)
                .collect(),
        ),
        Some(item @ Value::Object(_)) => Value::Array(vec![build(item)]),
        _ => Value::Array(Vec::new()),
    }
}

fn experience(item: &Value) -> Value {
    let mut entry = object_of_texts(Some(item), &EXPERIENCE_TEXT);
    entry.insert(
        "Responsibilities".into(),
        json!(text_list(item.get("Responsibilities"))),
    );
    Value::Object(entry)
}

fn education(item: &Value) -> Value {
    Value::Object(object_of_texts(Some(item), &EDUCATION_TEXT))
}

fn project(item: &Value) -> Value {
    json!({
        "Title": text(item.get("Title")),
        "Role": text(item.get("Role")),
        "Technologies": text_list(item.get("Technologies")),
        "Description": text_list(item.get("Description")),
    })
}

/// `value` in the resume shape: every key present, each of its type. `None`
/// when it is not a JSON object at all.
pub fn normalize(value: &Value) -> Option<Value> {
    let source = value.as_object()?;
    let mut resume = Map::new();
    for key in TEXT_FIELDS {
        resume.insert(key.to_owned(), Value::String(text(source.get(key))));
    }
    resume.insert(
        "Contact Information".into(),
        Value::Object(object_of_texts(
            source.get("Contact Information"),
            &CONTACT_FIELDS,
        )),
    );
    resume.insert("Skills".into(), skills(source.get("Skills")));
    resume.insert(
        "Experience".into(),
        entries(source.get("Experience"), experience),
    );
    resume.insert(
        "Education".into(),
        entries(source.get("Education"), education),
    );
    resume.insert("Projects".into(), entries(source.get("Projects"), project));
    let awards = match source.get("Awards") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![Value::String(s.trim().to_owned())],
        _ => Vec::new(),
    };
    resume.insert("Awards".into(), Value::Array(awards));
    Some(Value::Object(resume))
}

/// Lays the keys that `update` carries over `resume` and normalises the result.
pub fn merge(resume: Option<&Value>, update: &Value) -> Option<Value> {
    let mut merged = resume.cloned().unwrap_or_else(skeleton);
    let (Some(target), Some(changes)) = (merged.as_object_mut(), update.as_object()) else {
        return None;
    };
    for (key, value) in changes {
        if skeleton().get(key).is_some() {
            target.insert(key.clone(), value.clone());
        }
    }
    normalize(&merged)
}

/// Sets one field (`Contact Information.Email` reaches into the contact block).
pub fn set_field(resume: Option<&Value>, field: &str, value: Value) -> Option<Value> {
    let update = match field.strip_prefix("Contact Information.") {
        Some(sub) => {
            let mut contact = resume
                .and_then(|r| r.get("Contact Information"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            contact.as_object_mut()?.insert(sub.to_owned(), value);
            json!({ "Contact Information": contact })
        }
        None => json!({ field: value }),
    };
    merge(resume, &update)
}

/// The required fields that are empty, in asking order.
pub fn missing_fields(resume: &Value) -> Vec<&'static str> {
    REQUIRED_FIELDS
        .into_iter()
        .filter(|field| match resume.get(*field) {
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => true,
        })
        .collect()
}

/// The question that asks for a missing field.
pub fn question_for(field: &str) -> String {
    match field {
        "Experience" => "Looks like I'm missing your work experience. What was your most recent role, company and dates?".to_owned(),
        "Education" => "Looks like I'm missing your education. What did you study, and where?".to_owned(),
        other => format!("Looks like I'm missing your {other}. What is it?"),
    }
}

/// The value an answer to `question_for(field)` sets: list fields get one entry.
pub fn answer_value(field: &str, answer: &str) -> Value {
    match field {
        "Experience" => json!([{ "Description": answer }]),
        "Education" => json!([{ "Degree": answer }]),
        _ => Value::String(answer.to_owned()),
    }
}

/// Removes a Markdown code fence around the whole text, if any.
pub fn strip_code_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// The JSON object in the first ```json fenced block of `text`.
pub fn fenced_json(text: &str) -> Option<Value> {
    let start = text.find("```json")? + "```json".len();
    let rest = &text[start..];
    let end = rest.find("```")?;
    serde_json::from_str::<Value>(rest[..end].trim())
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_skills_lists_and_missing_keys() {
        let resume = normalize(&json!({
            "Name": "Ada", "Skills": ["Rust", "SQL"],
            "Experience": [{ "Position": "Engineer", "Responsibilities": "- build\n- test" }],
            "Projects": { "Title": "X", "Technologies": "Rust" },
        }))
        .unwrap();
        assert_eq!(resume["Skills"], json!({ "General": ["Rust", "SQL"] }));
        assert_eq!(
            resume["Experience"][0]["Responsibilities"],
            json!(["build", "test"])
        );
        assert_eq!(resume["Experience"][0]["Company"], "");
        assert_eq!(resume["Projects"][0]["Technologies"], json!(["Rust"]));
        assert_eq!(resume["Contact Information"]["GitHub"], "");
        assert_eq!(
            resume.as_object().unwrap().len(),
            skeleton().as_object().unwrap().len()
        );
        assert!(normalize(&json!(["not", "an", "object"])).is_none());
    }

    #[test]
    fn missing_fields_are_deterministic() {
        let resume = normalize(
            &json!({ "Name": "Ada", "Title": " ", "Experience": [{ "Position": "Dev" }] }),
        )
        .unwrap();
        assert_eq!(
            missing_fields(&resume),
            [
                "Title",
                "Location",
                "Email",
                "Phone",
                "Summary",
                "Education"
            ]
        );
    }

    #[test]
    fn fences_and_fenced_blocks() {
        assert_eq!(strip_code_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_code_fence("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(
            fenced_json("Sure!\n```json\n{\"Title\": \"CTO\"}\n```\nDone."),
            Some(json!({ "Title": "CTO" }))
        );
        assert_eq!(fenced_json("no block"), None);
    }

    #[test]
    fn set_field_reaches_contact_information() {
        let resume = set_field(None, "Contact Information.Email", json!("a@b.c")).unwrap();
        assert_eq!(resume["Contact Information"]["Email"], "a@b.c");
        assert!(is_known_field("Contact Information.LinkedIn"));
        assert!(!is_known_field("Salary"));
    }
}
