"""Target groups: rule files, rules compiled to SQL, the nightly overlap run, write-back."""
