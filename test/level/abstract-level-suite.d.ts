// abstract-level ships its shared test suite as CommonJS without typings.
declare module 'abstract-level/test/index.js' {
  import type { Test } from 'tape';

  interface SuiteOptions {
    test: (name: string, cb: (t: Test) => unknown) => void;
    factory: (options?: Record<string, unknown>) => unknown;
  }

  function suite(options: SuiteOptions): void;
  export default suite;
}
