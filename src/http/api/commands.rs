//! (being written)

use super::Route;

pub const ROUTES: &[Route] = &[];
