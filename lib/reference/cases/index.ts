/**
 * Every reference case checker, tried in order; the first whose `matches` accepts a case folder runs it.
 * One line per family: add new checkers here.
 */
import { CaseChecker } from '../case';
import { torchRandnChecker } from './random';

export const CHECKERS: readonly CaseChecker[] = [
  torchRandnChecker,
];
