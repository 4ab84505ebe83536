package sqlite

// KeyQuery is findKeys' query, for its plan test.
const KeyQuery = keyQuery
