import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkImportTable, documentedImports } from '../../../scripts/check-imports.js';

const root = join(import.meta.dirname, '..', '..', '..');

describe('docs/architecture.md package table', () => {
  it('matches what each package imports and declares', () => {
    expect(checkImportTable(root)).toEqual([]);
  });

  it('the checker notices a drift (a listed import the code does not make, an unlisted one it does)', () => {
    const md = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');
    expect(documentedImports(md).get('fusion')).toContain('data');
    const drifted = md
      .replace(/(\| `@vlmix\/fusion` \|.*\| )`core`, `mixins`, `data`/, '$1`core`, `mixins`')
      .replace(/(\| `@vlmix\/mixins` \|.*\| )`core`/, '$1`core`, `train`');
    expect(checkImportTable(root, drifted)).toEqual([
      '@vlmix/fusion: src imports data, which the table does not list',
      '@vlmix/mixins: the table lists train, which src does not import',
    ]);
  });
});
