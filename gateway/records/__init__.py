"""Service records: the archive of closed conversations, search, history, reviews and reports.

``model`` holds the record a closed conversation becomes (pure, built from the conversation and its
log); ``archive`` the interface every archive backend implements (SQLite, PostgreSQL). Nothing here
imports the server; the service layer writes records through an outbox in the store.
"""
