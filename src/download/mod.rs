pub mod plan;
pub mod reassembler;
