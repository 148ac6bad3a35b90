"""End-to-end encryption through the real server: keys, linking, history, blindness."""
