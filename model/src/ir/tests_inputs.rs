//! Malformed IR documents, the round trip, bad interpreter inputs and adversarial inputs at
//! the format limits.
