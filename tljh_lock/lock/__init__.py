"""The lock and recipe data models and the component kinds; pure data, no network."""
