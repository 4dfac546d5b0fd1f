//! Shoal's kernel side: network namespaces, links, and the namespace lab that runs a cluster on one machine.

pub mod dns;
pub mod lab;
pub mod lb;
pub mod net;
mod netns;
mod nsenter;
mod procs;

pub use lab::{unique_lab_name, wait_until, Lab, LabCommand, LabSpec};
