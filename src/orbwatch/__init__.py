"""orbwatch: find and block covert (ORB) networks by the behaviour of edge traffic and logins."""

__version__ = "0.1.0"
