"""What the tests share and are not tests themselves: builders of real stores, indexes and
params in tmp_path (`serve`, `search`, `store`) and deadline polling (`wait`)."""
