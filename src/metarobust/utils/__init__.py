"""Seeding, logging, checkpoints and run directories."""
