"""skewmit."""
