//! Reading a row's `state` column. The schema's CHECK constraints allow only
//! the words the code knows, so a word it does not know is a fault (a newer
//! schema, a hand edit) to report as an error, never a state to guess.

/// A state column holding a word this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} state {value:?} in the database")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

impl UnknownState {
    pub fn new(kind: &'static str, value: &str) -> UnknownState {
        UnknownState {
            kind,
            value: value.to_owned(),
        }
    }
}

/// It is the row that cannot be read.
impl From<UnknownState> for sqlx::Error {
    fn from(e: UnknownState) -> Self {
        sqlx::Error::Decode(Box::new(e))
    }
}
