"""Views of a task as each surface shows it: read by the API and by webhook delivery alike."""
