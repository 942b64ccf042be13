"""GliZNet: one-pass zero-shot text classification (the model arrives in a later change)."""
