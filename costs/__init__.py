"""Monthly cost estimate of each deployment profile from the synthesized templates (README.md)."""
