//! Symbology: OCC option symbols and CQS equity symbols.
