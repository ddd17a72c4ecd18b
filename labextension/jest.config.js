// Plain ts-jest: the tested logic (src/records.ts) is pure, so @jupyterlab/testutils' jsdom setup
// is not needed.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      { tsconfig: { module: 'commonjs', target: 'ES2018', strict: true, esModuleInterop: true, types: ['jest'] } }
    ]
  }
};
