"""What the request pipeline uses to shape a recommendation list."""
