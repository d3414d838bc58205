//! Micro Integrator (MI) runtimes: `management` is MI's Management API as plain data.

pub mod management;
