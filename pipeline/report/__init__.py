"""Human-facing outputs of a run: attention maps and the HTML report."""
