//! What forms share: errors shown next to the field they belong to.

use crate::domain::InvalidField;

/// Errors found in a form, each next to its field.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<InvalidField>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(InvalidField::new(field, message));
    }
}
