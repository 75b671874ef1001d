"""Operations behind `eventsctl dlq`: plain functions taking Pub/Sub clients as arguments, so
tests call them directly against the emulator and through the CLI."""
