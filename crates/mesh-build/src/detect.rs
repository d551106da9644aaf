//! Formula choice and buildpack detection.
