/** Chart helpers of lib/demo/render.ts (the demo and benchmark figures). */
import { linePanel, xTicks } from '../lib/demo/render';

describe('lib/demo/render', () => {
  it('xTicks picks round 1/2/5 x 10^k steps inside the range', () => {
    expect(xTicks([0, 49])).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40, 45]); // step 5: 49/5 <= 10 ticks
    expect(xTicks([0, 120])).toEqual([0, 20, 40, 60, 80, 100, 120]);
    expect(xTicks([0, 19])).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(xTicks([0, 1])).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(xTicks([3, 3])).toEqual([3]);
  });

  it('linePanel maps points into the plot box and escapes labels', () => {
    const svg = linePanel({ x: 0, y: 0, w: 174, h: 154, title: 'a < b', xLabel: 'step n', xRange: [0, 10], yRange: [0, 1],
      series: [{ points: [[0, 0], [10, 1]], color: 'red', label: 's&p' }] });
    // plot box: left 64, right 174 - 10 = 164, top 22, bottom 154 - 32 = 122
    expect(svg).toContain('points="64.0,122.0 164.0,22.0"');
    expect(svg).toContain('a &lt; b');
    expect(svg).toContain('s&amp;p');
  });
});
