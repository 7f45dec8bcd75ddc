"""File formats and atomic publication: every read and write of a file goes through here."""
