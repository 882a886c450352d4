"""GPS: device fixes decoded from real protocols and files, validated, stored and served."""
