//! `bootrig fstests`.
