"""The demos behind `make eval-demo` and `make sweep`: each step an ordinary command in its own process."""
