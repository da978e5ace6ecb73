//! The Monte-Carlo BER engine.
