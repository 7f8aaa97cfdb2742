"""The browser-service routers, in the order their routes are listed."""

from . import interaction, navigation, screen_analyze, screenshots, sessions

routers = [sessions.router, navigation.router, interaction.router, screenshots.router, screen_analyze.router]
