"""Building blocks the charts compose: secure defaults, pod hardening, custom resources."""
