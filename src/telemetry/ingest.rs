//! Decoding what log and metric shippers send into attributed records.
