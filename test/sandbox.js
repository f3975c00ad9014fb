// The sandbox lives in scripts/ so that the CLI demo and the benchmarks share it with the tests.
module.exports = require('../scripts/sandbox');
