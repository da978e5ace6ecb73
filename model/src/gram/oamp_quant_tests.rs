//! Tests of the OAMP PTQ lowering.
