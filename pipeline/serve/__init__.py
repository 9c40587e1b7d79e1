"""`capcache serve`: caption photos in the browser or over a JSON API, from trained runs."""
