"""Schultz Fasit (jobcentre and social cases, person-group markings): JSON queries and commands."""
