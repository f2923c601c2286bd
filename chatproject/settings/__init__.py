"""Settings by where the code runs: base (all of it, from the environment), local, test,
production."""
