"""Log format parsers: one module per format family, a registry and detection."""
