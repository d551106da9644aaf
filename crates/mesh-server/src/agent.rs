//! The agent gateway: what a rack's agents call with their join token, under `/v1/agent`.

pub mod binary;
pub mod cluster;
pub mod desired;
mod file_stream;
pub mod gateway;
pub mod registry;
pub mod scope;
