"""The browser client's Python side (runs in Pyodide, loaded by web/boot.js)."""
