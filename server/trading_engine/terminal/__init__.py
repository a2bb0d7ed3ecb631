"""What the command-line tools print: explanations and live signal tables."""
