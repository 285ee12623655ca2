"""Background jobs leased through the database, so each runs once across replicas."""
