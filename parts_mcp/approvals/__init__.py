"""The approval page and the channels that bring its link to a person (issue 10)."""
