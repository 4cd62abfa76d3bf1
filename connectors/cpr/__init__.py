"""CPR: the person register, read by SOAP person lookup (zeep), to enrich persons seen in cases."""
