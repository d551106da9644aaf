//! Procfile parsing: `name: command` lines declaring an app's process types.
