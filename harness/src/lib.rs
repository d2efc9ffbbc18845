//! bootrig
