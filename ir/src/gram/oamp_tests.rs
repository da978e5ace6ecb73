//! Tests of the version-4 (oamp) golden model.
