//! A node's `Spec.Availability`, one type for the store, the API and the scheduler.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the scheduler may place on a node: paused and drained nodes take no new tasks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    /// Docker's spelling (`active`, `pause`, `drain`).
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not an availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityError(pub String);

impl fmt::Display for AvailabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid availability {:?}: expected active, pause or drain",
            self.0
        )
    }
}

impl std::error::Error for AvailabilityError {}

impl FromStr for Availability {
    type Err = AvailabilityError;

    /// Docker's spelling, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(Availability::Active),
            "pause" => Ok(Availability::Pause),
            "drain" => Ok(Availability::Drain),
            _ => Err(AvailabilityError(s.to_string())),
        }
    }
}
