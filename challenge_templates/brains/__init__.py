"""Brain connectivity (1000 Brains): predict sex and age from a connectivity matrix; trained by the organizer (option 2.3)."""

TITLE = "Sex and age from brain connectivity (1000 Brains)"
