"""Human-readable reports of model evaluations, built from pure inputs."""
